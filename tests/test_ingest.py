"""The ways in: Python producer, `streams produce`, `POST /articles`, and the RSS/Atom poller.

Good articles arrive intact on articles.raw; bad ones are rejected at the door with a reason and
nothing of a rejected request is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.sources.producer import ArticleProducer
from streams.sources.rss import FeedConfig, PollConfig, Poller, PollState
from tests.conftest import Pipeline

GOOD = {"id": "g-1", "url": "https://news.example/g-1", "source": "news.example", "title": "Rates held",
        "body": "The central bank held rates on Thursday.", "published_at": "2026-09-05T06:00:00Z"}


def raw_messages(pipeline: Pipeline, expect: int, timeout: float = 20) -> list[tuple[bytes | None, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(pipeline.settings.topic("articles.raw"), bootstrap_servers=pipeline.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1500)
    out, deadline = [], time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        out += [(r.key, r.value) for r in consumer]
    out += [(r.key, r.value) for r in consumer]  # and nothing more
    consumer.close()
    return out


@pytest.mark.kafka
def test_kafka_python_checksums_records_in_c() -> None:
    """Every kafka-python producer and reader checksums each record batch (CRC32C); without the
    ``crc32c`` package that is pure Python, 0.7 ms for a 3 kB article, and the bench's publisher and
    reader would take that from the cores the pipeline is measured on."""
    from kafka.record import util

    assert util.crc32c_c is not None
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_python_producer_sends_good_keyed_and_rejects_bad(pipeline: Pipeline) -> None:
    bad = [{**GOOD, "id": "b-1", "url": "nope"}, {**GOOD, "id": "b-2", "body": ""}, "not json"]
    with ArticleProducer(pipeline.settings, pipeline.bootstrap) as producer:
        report = producer.publish_many([GOOD, {**GOOD, "id": "g-2"}, *bad])
    assert report.sent == 2 and report.ids == ["g-1", "g-2"]
    assert dict(report.rejected) == {"bad_url": 1, "empty_body": 1, "not_json": 1}
    got = sorted(raw_messages(pipeline, 2))  # two keys, two partitions: no order between them
    assert [(k, json.loads(v)) for k, v in got] == [(b"g-1", GOOD), (b"g-2", {**GOOD, "id": "g-2"})]


@pytest.mark.kafka
def test_cli_produce_directory_with_rate_and_summary(pipeline: Pipeline, tmp_path: Path) -> None:
    site = tmp_path / "site.example"
    site.mkdir()
    (site / "a.html").write_text("<html><head><title>A</title></head><body><p>Alpha text here.</p></body></html>")
    (site / "b.txt").write_text("Beta\n\nSome plain text article.")
    (site / "batch.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "x", "url": "bad"}) + "\n")
    env = {**os.environ, "STREAMS_BROKER": pipeline.bootstrap, "STREAMS_TOPIC_PREFIX": pipeline.settings.topic_prefix}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams", "produce", str(site), "--rate", "10/s", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "sent 3, rejected 1 (bad_url=1)" in done.stdout
    assert elapsed >= 0.3  # four messages at 10/s take at least three gaps of 0.1 s
    got = {json.loads(v)["id"]: json.loads(v) for _, v in raw_messages(pipeline, 3)}
    assert set(got) == {"site.example/a.html", "site.example/b.txt", "g-1"}
    assert got["site.example/a.html"]["content_type"] == "text/html"
    assert got["site.example/b.txt"]["source"] == "site.example"


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.kafka
def test_http_endpoint(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    worker.wait_ready()
    base = f"http://127.0.0.1:{worker.web_port}"
    status, body = post(f"{base}/articles", json.dumps(GOOD).encode())
    assert (status, body) == (202, {"accepted": 1, "ids": ["g-1"]})
    status, body = post(f"{base}/articles", json.dumps([{**GOOD, "id": "g-2"}, {**GOOD, "id": "g-3"}]).encode())
    assert status == 202 and body["ids"] == ["g-2", "g-3"]
    # all or nothing: one bad article rejects the request
    status, body = post(f"{base}/articles", json.dumps([{**GOOD, "id": "g-4"}, {**GOOD, "url": "x"}]).encode())
    assert status == 400 and body["rejected"] == [{"index": 1, "id": "g-1", "reason": "bad_url",
                                                   "detail": body["rejected"][0]["detail"]}]
    assert post(f"{base}/articles", b"{oops")[0] == 400
    assert post(f"{base}/articles", b"id=1", "application/x-www-form-urlencoded")[0] == 415
    assert post(f"{base}/articles", json.dumps({**GOOD, "body": "x" * 2_000_000}).encode())[0] == 413
    ids = [json.loads(v)["id"] for _, v in raw_messages(pipeline, 3)]
    assert sorted(ids) == ["g-1", "g-2", "g-3"]
    spec = json.loads(urllib.request.urlopen(f"{base}/openapi.json", timeout=10).read())
    assert "/articles" in spec["paths"] and spec["openapi"].startswith("3.")
    metrics = worker.scrape()
    assert 'streams_ingest_total{outcome="accepted",path="http"} 3.0' in metrics
    assert 'streams_ingest_rejected_total{path="http",reason="bad_url"} 1.0' in metrics


RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
{items}</channel></rss>"""
ITEM = """<item><title>{title}</title><link>http://127.0.0.1:{port}/story/{n}</link><guid>story-{n}</guid>
<pubDate>Sat, 05 Sep 2026 06:0{n}:00 GMT</pubDate>
<description>&lt;p&gt;Story {n} text.&lt;/p&gt;</description></item>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title>
<entry><title>Atom one</title><link href="http://127.0.0.1:{port}/atom/1"/><id>urn:atom:1</id>
<updated>2026-09-05T07:00:00Z</updated><content type="html">&lt;p&gt;Atom body.&lt;/p&gt;</content></entry></feed>"""


class FeedServer:
    """A local HTTP server with an RSS and an Atom feed that honours ETags; records requests."""

    def __init__(self) -> None:
        self.items = 2
        self.pages: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("If-None-Match")))
                port = self.server.server_address[1]
                if self.path == "/rss.xml":
                    body = RSS.format(items="".join(ITEM.format(title=f"Story {n}", port=port, n=n)
                                                    for n in range(1, server.items + 1))).encode()
                elif self.path == "/atom.xml":
                    body = ATOM.format(port=port).encode()
                elif self.path.startswith("/story/"):
                    body = b"<html><body><article><p>Full page of the story.</p></article></body></html>"
                elif self.path in server.pages:
                    body = server.pages[self.path]
                elif self.path == "/dribble.xml":  # a server that never finishes its answer in time
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    for _ in range(200):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                else:
                    self.send_error(404)
                    return
                etag = f'"{hashlib.sha1(body).hexdigest()}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def feeds() -> FeedServer:
    server = FeedServer()
    yield server
    server.close()


def test_poller_conditional_get_and_once_only_across_restarts(feeds: FeedServer, tmp_path: Path) -> None:
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"interval: 1\nfeeds:\n  - url: http://127.0.0.1:{feeds.port}/rss.xml\n"
                           f"    source: wire.example\n  - http://127.0.0.1:{feeds.port}/atom.xml\n")
    config = PollConfig.load(config_path)
    sent: list[dict] = []

    def publish(article: dict) -> str:
        sent.append(article)
        return article["id"]

    state_path = tmp_path / "state.json"
    first = Poller(config, PollState.load(state_path), publish).poll_once()
    assert (first.published, first.fetched) == (3, 2)
    assert {a["title"] for a in sent} == {"Story 1", "Story 2", "Atom one"}
    story = next(a for a in sent if a["title"] == "Story 1")
    assert story["source"] == "wire.example" and story["url"].endswith("/story/1")
    assert story["published_at"] == "2026-09-05T06:01:00+00:00" and "Story 1 text" in story["body"]

    # unchanged feeds: conditional GETs answered 304, nothing re-sent
    again = Poller(config, PollState.load(state_path), publish).poll_once()
    assert (again.not_modified, again.published) == (2, 0)
    assert all(etag is not None for path, etag in feeds.requests[-2:])

    # a new item after a restart (fresh poller, same state file): only the new one is sent
    feeds.items = 3
    later = Poller(config, PollState.load(state_path), publish).poll_once()
    assert (later.published, later.skipped) == (1, 2)
    assert [a["title"] for a in sent].count("Story 1") == 1 and sent[-1]["title"] == "Story 3"


def test_poller_fetch_page(feeds: FeedServer, tmp_path: Path) -> None:
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"feeds:\n  - url: http://127.0.0.1:{feeds.port}/rss.xml\n    fetch_page: true\n")
    sent: list[dict] = []
    Poller(PollConfig.load(config_path), PollState.load(tmp_path / "s.json"),
           lambda a: sent.append(a) or a["id"], fetch_private=True).poll_once()
    assert len(sent) == 2 and all("Full page of the story" in a["body"] for a in sent)


def test_fetch_page_never_reads_internal_addresses(feeds: FeedServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An item linking to the worker's own /metrics (or anything inside), directly or by a redirect
    from a public host, is not fetched unless STREAMS_FETCH_PRIVATE allows it."""
    import httpx

    from streams.sources import rss

    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"feeds:\n  - url: http://127.0.0.1:{feeds.port}/rss.xml\n    fetch_page: true\n")
    sent: list[dict] = []
    report = Poller(PollConfig.load(config_path), PollState.load(tmp_path / "s.json"),
                    lambda a: sent.append(a) or a["id"]).poll_once()
    assert not sent and len(report.errors) == 2 and all("internal address" in e for e in report.errors)
    assert [p for p, _ in feeds.requests] == ["/rss.xml"], "nothing but the feed itself was requested"

    real = socket.getaddrinfo
    monkeypatch.setattr(rss.socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))] if host == "public.example" else real(
        host, *a, **k))

    def hop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": f"http://127.0.0.1:{feeds.port}/metrics"})

    with pytest.raises(rss.FetchRefused, match="internal address"):
        rss.fetch(httpx.Client(transport=httpx.MockTransport(hop)), "http://public.example/a", 1000, False)


def test_a_feed_declaring_entities_is_refused_and_the_other_feeds_go_on(feeds: FeedServer, tmp_path: Path) -> None:
    entity = "x" * 50_000
    refs = "&e;" * 4000  # ~200 MB once expanded
    feeds.pages["/bomb.xml"] = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "{entity}">]>'
                                f"<rss><channel><item><title>{refs}</title></item></channel></rss>").encode()
    feeds.pages["/bad-char.xml"] = RSS.format(items=ITEM.format(title="Cut &#xD800; mid-emoji", port=feeds.port,
                                                                n=7)).encode()
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"feeds:\n  - http://127.0.0.1:{feeds.port}/bomb.xml\n"
                           f"  - http://127.0.0.1:{feeds.port}/bad-char.xml\n"
                           f"  - http://127.0.0.1:{feeds.port}/rss.xml\n")
    from streams.contract.validate import Rejection, parse_raw

    sent: list[dict] = []

    def publish(article: dict) -> str | None:  # as the producer validates
        sent.append(article)
        try:
            data = json.dumps(article, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return None
        parsed = parse_raw(data, 1_000_000)
        return None if isinstance(parsed, Rejection) else parsed.id

    report = Poller(PollConfig.load(config_path), PollState.load(tmp_path / "s.json"), publish).poll_once()
    assert any("declares XML entities" in e for e in report.errors)
    assert report.published == 3 and not report.rejected, report  # the feeds after the bomb went on
    assert [a for a in sent if "\ufffd" in (a["title"] or "")], "a reference to a lone surrogate became U+FFFD"
    assert (tmp_path / "s.json").exists(), "the state was saved"


def test_a_feed_that_never_finishes_is_cut_off(feeds: FeedServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.sources import rss

    monkeypatch.setattr(rss, "DEADLINE_S", 1.0)
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"feeds:\n  - http://127.0.0.1:{feeds.port}/dribble.xml\n"
                           f"  - http://127.0.0.1:{feeds.port}/rss.xml\n")
    started = time.monotonic()
    report = Poller(PollConfig.load(config_path), PollState.load(tmp_path / "s.json"), lambda a: a["id"]).poll_once()
    assert time.monotonic() - started < 5
    assert report.published == 2 and any("not complete within" in e for e in report.errors)


def test_a_feed_longer_than_the_window_is_not_republished(tmp_path: Path) -> None:
    from streams.sources.rss import SEEN_PER_FEED

    state = PollState.load(tmp_path / "s.json")
    feed = state.of("http://feed")
    feed["seen"] = [f"item-{i}" for i in range(SEEN_PER_FEED + 100)]
    feed["size"] = SEEN_PER_FEED + 100
    state.save()
    assert len(PollState.load(tmp_path / "s.json").of("http://feed")["seen"]) == SEEN_PER_FEED + 100


@pytest.mark.kafka
def test_cli_poll_publishes_to_kafka(pipeline: Pipeline, feeds: FeedServer, tmp_path: Path) -> None:
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text(f"feeds:\n  - http://127.0.0.1:{feeds.port}/rss.xml\n")
    env = {**os.environ, "STREAMS_BROKER": pipeline.bootstrap, "STREAMS_TOPIC_PREFIX": pipeline.settings.topic_prefix}
    cmd = [sys.executable, "-m", "streams", "poll", str(config_path), "--once", "--state", str(tmp_path / "st.json")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "2 new" in done.stdout, done.stdout + done.stderr
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert "0 new, 1 unchanged" in again.stdout
    got = [json.loads(v) for _, v in raw_messages(pipeline, 2)]
    assert sorted(a["title"] for a in got) == ["Story 1", "Story 2"]


xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
hostile_feed = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda title, body: (f'<?xml version="1.0"?><rss version="2.0"><channel><item><title>{title}</title>'
                                   f"<link>https://x.example/1</link><description>{body}</description></item>"
                                   "</channel></rss>").encode("utf-8", "surrogatepass"),
              xml_text | st.sampled_from(["&#xD800;", "&#55296;", "&#0;", "&bogus;", "<![CDATA[", "]]>"]),
              xml_text),
    st.builds(lambda n, k: (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "{"x" * n}">]>'
                            f"<rss><channel><item><title>{'&e;' * k}</title></item></channel></rss>").encode(),
              st.integers(1, 5000), st.integers(1, 500)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_feed)
def test_the_poller_survives_any_feed(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    """Whatever a feed server answers, the poll ends: the feed is skipped or its items go to the door,
    the next feed is still polled, and the state is saved."""
    import httpx

    good = RSS.format(items=ITEM.format(title="Fine", port=1, n=1)).encode()
    client = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, content=content if request.url.path == "/hostile" else good)))
    directory = tmp_path_factory.mktemp("poll")
    config = PollConfig([FeedConfig("http://feeds.example/hostile", "h"), FeedConfig("http://feeds.example/good", "g")])
    sent: list[dict] = []
    report = Poller(config, PollState.load(directory / "s.json"), lambda a: sent.append(a) or a["id"],
                    client=client).poll_once()
    assert [a["title"] for a in sent if a["source"] == "g"] == ["Fine"]
    assert report.fetched + len(report.errors) >= 2 and (directory / "s.json").exists()
