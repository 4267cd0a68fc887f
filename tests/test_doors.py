"""The doors: bearer tokens on POST /articles (against a real worker), and signed webhook deliveries
verified by a local receiver with exactly the lines docs/security.md gives receivers."""

from __future__ import annotations

import json
import re
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
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.settings import Settings
from streams.sinks.consumers import SIGNATURE_HEADER, WebhookForwarder
from streams.sources.ingest import IngestTokens, check_open_door
from tests.conftest import ROOT, Pipeline
from tests.test_forwarders import alert
from tests.test_ingest import GOOD, raw_messages

TOKEN = "tok-9f2c41d7e0b3a8"
ROTATED = "tok-rotated-51be7a0c"


def dribble_headers_until_closed(port: int, give_up_after: float) -> float:
    """Send a request's headers a byte a second; the seconds until the server closed the connection."""
    header = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        for byte in header:
            try:
                conn.sendall(bytes([byte]))
                if conn.recv(200) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass  # still open: the next byte
            except OSError:
                return time.monotonic() - started
            assert time.monotonic() - started < give_up_after, "the server kept a dribbling connection open"
    raise AssertionError("sent every header byte without being cut off")


def post(url: str, body: dict, authorization: str | None = None, host: str | None = None) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if host is not None:
        headers["Host"] = host
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def test_tokens_are_compared_by_digest_and_never_shown(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"# producers on the east side\n{ROTATED}\n\n")
    tokens = IngestTokens(SecretStr(TOKEN), file)
    assert tokens.required and TOKEN not in repr(tokens) and ROTATED not in repr(tokens)
    assert tokens.refusal(f"Bearer {TOKEN}") is None and tokens.refusal(f"bearer  {ROTATED} ") is None
    assert tokens.refusal(None) == tokens.refusal("Basic dXNlcjpwYXNz") == tokens.refusal("Bearer ") == "missing_token"
    assert tokens.refusal(f"Bearer {TOKEN}x") == tokens.refusal("Bearer # producers") == "wrong_token"
    assert not IngestTokens().required and IngestTokens().refusal(None) is None
    with pytest.raises(ConfigError, match="no such file"):
        IngestTokens(None, tmp_path / "missing")


@pytest.mark.parametrize("emptied", ["", "# rotating\n\n", None, b"\xff\xfe not utf-8"])
def test_a_tokens_file_that_holds_no_token_fails_closed(tmp_path: Path, emptied: str | bytes | None,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Truncated mid-rotation, only comments, deleted or unreadable: every request is refused, loudly,
    and the open-door rule still sees a door that needs a token."""
    import os

    file = tmp_path / "tokens"
    file.write_text(f"{ROTATED}\n")
    tokens = IngestTokens(None, file)
    assert tokens.refusal(f"Bearer {ROTATED}") is None
    if emptied is None:
        file.unlink()
    elif isinstance(emptied, bytes):
        file.write_bytes(emptied)
    else:
        file.write_text(emptied)
    os.utime(file, (1, 1)) if file.exists() else None  # a new mtime even within the clock's resolution
    with caplog.at_level("ERROR"):
        assert tokens.refusal(None) == tokens.refusal(f"Bearer {ROTATED}") == "no_valid_token"
    assert "every POST /articles is refused" in caplog.text
    assert tokens.required
    assert check_open_door(Settings(web_host="0.0.0.0"), tokens) is None  # a token is still required
    file.write_text(f"{TOKEN}\n")
    assert tokens.refusal(f"Bearer {TOKEN}") is None, "a token written back opens the door again"


def test_an_open_door_is_refused_unless_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert check_open_door(Settings(web_host=host), IngestTokens()) is None
    assert check_open_door(Settings(web_host="0.0.0.0", ingest_token=TOKEN), IngestTokens(SecretStr(TOKEN))) is None
    with pytest.raises(ConfigError, match="STREAMS_INGEST_TOKEN"):
        check_open_door(Settings(web_host="0.0.0.0"), IngestTokens())
    warning = check_open_door(Settings(web_host="0.0.0.0", ingest_open=True), IngestTokens())
    assert warning and "without a token" in warning


def test_worker_refuses_to_start_with_an_open_door() -> None:
    env = {"PATH": "/usr/bin:/bin", "STREAMS_WEB_HOST": "0.0.0.0", "STREAMS_BROKER": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "STREAMS_INGEST_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.kafka
def test_worker_door_takes_only_the_right_bearer_token(pipeline: Pipeline, tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{ROTATED}\n")
    worker = pipeline.start_worker(STREAMS_INGEST_TOKEN=TOKEN, STREAMS_INGEST_TOKENS_FILE=str(tokens_file),
                                   STREAMS_SPACY_MODEL="none")
    worker.wait_ready()
    url = f"http://127.0.0.1:{worker.web_port}/articles"

    status, body, headers = post(url, {**GOOD, "id": "none"})
    assert (status, body) == (401, {"error": "unauthorized"}) and headers.get("WWW-Authenticate") == "Bearer"
    assert post(url, {**GOOD, "id": "wrong"}, f"Bearer {TOKEN[:-1]}")[:2] == (401, {"error": "unauthorized"})
    assert post(url, {**GOOD, "id": "basic"}, "Basic dXNlcjpwYXNz")[0] == 401
    assert post(url, {**GOOD, "id": "ok-1"}, f"Bearer {TOKEN}")[:2] == (202, {"accepted": 1, "ids": ["ok-1"]})
    assert post(url, {**GOOD, "id": "ok-2"}, f"Bearer {ROTATED}")[0] == 202
    # rotation: the file changes, the worker follows without a restart
    time.sleep(1.1)  # a new mtime even on coarse file systems
    tokens_file.write_text("tok-next-0c7e19\n")
    assert post(url, {**GOOD, "id": "old"}, f"Bearer {ROTATED}")[0] == 401
    assert post(url, {**GOOD, "id": "ok-3"}, "Bearer tok-next-0c7e19")[0] == 202
    # a page whose DNS name was rebound to 127.0.0.1 sends its own Host: refused before the token check
    assert post(url, {**GOOD, "id": "rebound"}, "Bearer tok-next-0c7e19", host="evil.example:80")[0] == 421
    # a client that sends its headers and then dribbles (here: stops) its body gets 408 after 10 s
    with socket.create_connection(("127.0.0.1", worker.web_port), timeout=30) as conn:
        conn.sendall(b"POST /articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer tok-next-0c7e19\r\nContent-Length: 500\r\n\r\n{\"id\": ")
        started = time.monotonic()
        answer = conn.recv(200)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 20, answer
    # one that dribbles its headers, a byte a second, is cut off at the 10 s header deadline
    assert dribble_headers_until_closed(worker.web_port, give_up_after=40) < 20
    for page in ("/metrics", "/openapi.json"):
        rebound = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{page}", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebound, timeout=10)
        assert refused.value.code == 421, page
    # Faust's own pages are off: they would say which ids were seen and where the workers are
    for page in ("/table/", "/router/", "/graph/", "/stats/"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}{page}", timeout=10)
        assert missing.value.code == 404, page

    published = sorted(json.loads(v)["id"] for _, v in raw_messages(pipeline, 3))
    assert published == ["ok-1", "ok-2", "ok-3"]  # no rejected request published anything
    metrics = worker.scrape()
    assert 'streams_ingest_rejected_total{path="http",reason="missing_token"} 2.0' in metrics
    assert 'streams_ingest_rejected_total{path="http",reason="wrong_token"} 2.0' in metrics
    assert 'streams_ingest_total{outcome="accepted",path="http"} 3.0' in metrics
    worker.stop()
    for secret in (TOKEN, ROTATED, "tok-next-0c7e19"):
        assert secret not in metrics and secret not in worker.log.read_text()


def readme_verifier():
    """The receiver's verification function, exactly as docs/security.md prints it."""
    readme = (ROOT / "docs" / "security.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
              if "def verify_streams_signature" in block]
    namespace: dict = {}
    exec(compile(code, "docs/security.md", "exec"), namespace)
    return namespace["verify_streams_signature"]


class SigningReceiver:
    """A webhook receiver that keeps each delivery's raw body and headers."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.deliveries.append((self.rfile.read(int(self.headers["Content-Length"])), dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_signed_webhooks_verify_with_the_readme_lines_and_tampering_fails() -> None:
    verify = readme_verifier()
    secret = "whsec-3b9d0f6a71"
    receiver = SigningReceiver()
    settings = Settings(webhook_secret=secret, webhook_headers={"Authorization": "Bearer receiver-key"})
    forwarder = WebhookForwarder.from_settings(receiver.url, settings)
    stale = WebhookForwarder.from_settings(receiver.url, settings)
    stale.clock = lambda: time.time() - 600
    try:
        forwarder.deliver(alert("s1"))
        forwarder.deliver(alert("s2", rule="unicode-ü"))
        stale.deliver(alert("s3"))
    finally:
        receiver.httpd.shutdown()
    (body1, h1), (body2, h2), (body3, h3) = receiver.deliveries
    assert json.loads(body1)["id"] == "s1" and h1["Authorization"] == "Bearer receiver-key"
    key = secret.encode()
    assert verify(key, body1, h1[SIGNATURE_HEADER]) and verify(key, body2, h2[SIGNATURE_HEADER])
    tampered = body1.replace(b'"severity":"high"', b'"severity":"low"')
    assert tampered != body1 and not verify(key, tampered, h1[SIGNATURE_HEADER])
    assert not verify(key, body2, h1[SIGNATURE_HEADER])  # a signature belongs to its own body
    assert not verify(b"another-secret", body1, h1[SIGNATURE_HEADER])
    assert not verify(key, body3, h3[SIGNATURE_HEADER])  # ten minutes old: a replay
    assert verify(key, body3, h3[SIGNATURE_HEADER], tolerance=900)
    assert secret not in repr(forwarder) and "receiver-key" not in repr(forwarder)


def test_unsigned_without_a_secret() -> None:
    body, headers = WebhookForwarder("http://127.0.0.1:9/hook").request(alert())
    assert SIGNATURE_HEADER not in headers and json.loads(body)["id"] == "a1"


def article_json(aid: str, **fields: object) -> dict:
    return {"id": aid, "url": f"https://x.example/{aid}", "source": "x.example", "title": "A headline",
            "body": "Enough words to be an article body here.", "published_at": "2026-09-05T06:00:00Z", **fields}


@pytest.mark.parametrize(("body", "reason"), [
    (json.dumps([article_json("a-1"), article_json("a-2"), article_json("a-3", body="x \ud800")]), "bad_unicode"),
    (json.dumps([article_json("a-1"), article_json("a-1")]), "duplicate_id"),
    (json.dumps([article_json("a\u0000b")]), "bad_id"),
    (json.dumps([article_json("a-1", title="T" * 148_000)]), "bad_title"),
])
def test_a_batch_with_one_bad_article_is_refused_whole_before_anything_is_published(body: str, reason: str) -> None:
    """A lone surrogate (a string cut mid-emoji), a repeated id, a control character in an id, a title
    the tagger could not take: 400 naming the index and reason, and no article to publish."""
    from streams.sources.ingest import handle_post

    result = handle_post(body.encode(), "application/json", 1_000_000)
    assert result.status == 400 and not result.articles
    [rejected] = result.body["rejected"]
    assert rejected["reason"] == reason and isinstance(rejected["index"], int)


@pytest.mark.parametrize("body", [b"[" * 1000 + b"]" * 1000, b'{"id": ' + b"9" * 5000 + b"}",
                                  b'[{"id": "a", "n": ' + b"1" * 5000 + b"}]"])
def test_deep_nesting_and_huge_integers_are_400_not_500(body: bytes) -> None:
    from streams.sources.ingest import handle_post

    result = handle_post(body, "application/json", 1_000_000)
    assert result.status == 400 and result.body["error"] in ("not_json", "invalid_articles")


def test_every_article_the_door_accepts_fits_the_tagger() -> None:
    from streams.contract.events import MAX_TITLE_CHARS
    from streams.settings import DATA_DIR, MAX_BODY_BYTES_LIMIT
    from streams.stages.tag import build_nlp

    assert build_nlp(None, DATA_DIR / "kb.yaml").max_length >= MAX_BODY_BYTES_LIMIT + MAX_TITLE_CHARS + 2
    with pytest.raises(ValueError, match="less than or equal"):
        Settings(max_body_bytes=MAX_BODY_BYTES_LIMIT + 1)
