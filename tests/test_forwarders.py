"""Alert consumers: the webhook forwarder against a server that fails then recovers, permanent
failures dead-lettered, Alertmanager for real, and `streams alerts` on the terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from streams.contract.events import Alert, Evidence
from streams.sinks.consumers import AlertmanagerForwarder, PermanentFailure, SeenIds, WebhookForwarder, forward
from streams.tools.broker import free_port
from tests.conftest import Pipeline, require, wait_http

NOW = datetime(2026, 9, 5, 12, tzinfo=UTC)


def alert(aid: str = "a1", rule: str = "r1", severity: str = "high") -> Alert:
    return Alert(id=aid, rule_id=rule, severity=severity, title=f"Title {aid}", url="https://x.example/1",
                 source="x.example", article_ids=["art-1"], evidence=Evidence(entities=["country/RU"]),
                 published_at=NOW, created_at=NOW)


class Receiver:
    """A webhook receiver: the first ``fail`` requests get 503; rule ``refused`` always gets 400."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.received, self.attempts = fail, [], 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                if body.get("rule_id") == "refused":
                    self.send_response(400)
                elif receiver.attempts <= receiver.fail:
                    self.send_response(503)
                else:
                    receiver.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_webhook_retries_with_backoff_until_the_receiver_recovers() -> None:
    receiver = Receiver(fail=3)
    sleeps: list[float] = []
    try:
        WebhookForwarder(receiver.url, retries=5, backoff=0.1, sleep=sleeps.append).deliver(alert())
    finally:
        receiver.close()
    assert receiver.attempts == 4 and receiver.received[0]["id"] == "a1"
    assert sleeps == [0.1, 0.2, 0.4]


def test_webhook_gives_up_on_a_permanent_refusal_and_after_the_last_retry() -> None:
    receiver = Receiver(fail=100)
    try:
        with pytest.raises(PermanentFailure):
            WebhookForwarder(receiver.url, sleep=lambda s: None).deliver(alert(rule="refused"))
        assert receiver.attempts == 1
        with pytest.raises(httpx.HTTPStatusError):
            WebhookForwarder(receiver.url, retries=2, sleep=lambda s: None).deliver(alert())
        assert receiver.attempts == 4
    finally:
        receiver.close()


def publish_alerts(pipeline: Pipeline, alerts: list[Alert]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    for a in alerts:
        producer.send(pipeline.settings.topic("alerts"), key=a.id.encode(), value=a.dumps())
    producer.flush()
    producer.close()


@pytest.mark.kafka
def test_forwarder_delivers_from_kafka_and_dead_letters_refusals(pipeline: Pipeline) -> None:
    from kafka import KafkaConsumer

    publish_alerts(pipeline, [alert("a1"), alert("a2", rule="refused"), alert("a3")])
    receiver = Receiver(fail=1)
    try:
        counts = forward(WebhookForwarder(receiver.url, backoff=0.05), pipeline.settings, pipeline.bootstrap,
                         "fwd-test", stop_after_idle=2)
    finally:
        receiver.close()
    assert counts == {"delivered": 2, "dead_lettered": 1, "repeats": 0, "bad": 0}
    assert sorted(r["id"] for r in receiver.received) == ["a1", "a3"]
    consumer = KafkaConsumer(pipeline.settings.topic("alerts.deadletter"), bootstrap_servers=pipeline.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    [letter] = [json.loads(r.value) for r in consumer]
    consumer.close()
    assert letter["id"] == "a2" and letter["reason"] == "delivery_failed" and "400" in letter["detail"]
    assert json.loads(letter["original"])["rule_id"] == "refused"
    # committed: a second run of the same group has nothing left to do
    again = forward(WebhookForwarder(receiver.url), pipeline.settings, pipeline.bootstrap, "fwd-test",
                    stop_after_idle=2)
    assert again == {"delivered": 0, "dead_lettered": 0, "repeats": 0, "bad": 0}


def test_seen_ids_are_bounded_and_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "seen" / "x.ids"
    seen = SeenIds(path, limit=3)
    for i in range(5):
        seen.add(f"a{i}")
        seen.add(f"a{i}")  # a repeat is not written twice
    assert "a0" not in seen and "a1" not in seen and all(f"a{i}" in seen for i in (2, 3, 4))
    again = SeenIds(path, limit=3)  # a restart reads what the file kept
    assert list(again.ids) == ["a2", "a3", "a4"]
    for i in range(5, 12):
        again.add(f"a{i}")
    assert len(path.read_text().split()) <= 2 * 3  # compacted, never more than twice the limit
    assert list(SeenIds(path, limit=3).ids) == ["a9", "a10", "a11"]


@pytest.mark.kafka
def test_a_replayed_alert_reaches_the_receiver_once(pipeline: Pipeline) -> None:
    """The pipeline is at-least-once: after a crash an alert can come again with its id."""
    publish_alerts(pipeline, [alert("r1"), alert("r2"), alert("r1")])
    receiver = Receiver()
    try:
        counts = forward(WebhookForwarder(receiver.url), pipeline.settings, pipeline.bootstrap, "fwd-once",
                         stop_after_idle=2)
        publish_alerts(pipeline, [alert("r2"), alert("r3")])  # replays after the forwarder's own restart
        again = forward(WebhookForwarder(receiver.url), pipeline.settings, pipeline.bootstrap, "fwd-once",
                        stop_after_idle=2)
    finally:
        receiver.close()
    assert counts == {"delivered": 2, "dead_lettered": 0, "repeats": 1, "bad": 0}
    assert again == {"delivered": 1, "dead_lettered": 0, "repeats": 1, "bad": 0}
    assert [r["id"] for r in receiver.received] == ["r1", "r2", "r3"]


def test_alertmanager_forwarder_against_a_real_alertmanager(tmp_path: Path) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require(binary is not None, "Alertmanager (Debian package prometheus-alertmanager)")
    config = tmp_path / "am.yml"
    config.write_text("route:\n  receiver: default\nreceivers:\n  - name: default\n")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/-/ready")
        news = alert("am-1", rule="russia-sanctions-payments").model_copy(update={"created_at": datetime.now(UTC)})
        AlertmanagerForwarder(base).deliver(news)
        seen = json.loads(urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5).read())
    finally:
        proc.terminate()
        proc.wait(10)
    [got] = [a for a in seen if a["labels"].get("alert_id") == "am-1"]
    assert got["labels"]["alertname"] == "NewsAlert" and got["labels"]["severity"] == "high"
    assert got["labels"]["rule_id"] == "russia-sanctions-payments"
    assert got["annotations"]["title"] == "Title am-1" and got["status"]["state"] == "active"


@pytest.mark.kafka
def test_streams_alerts_prints_and_filters(pipeline: Pipeline) -> None:
    publish_alerts(pipeline, [alert("h1", severity="high"), alert("l1", severity="low"),
                              alert("c1", rule="other", severity="critical")])
    env = {**os.environ, "STREAMS_BROKER": pipeline.bootstrap, "STREAMS_TOPIC_PREFIX": pipeline.settings.topic_prefix}
    cmd = [sys.executable, "-m", "streams", "alerts", "--from-beginning", "--idle", "3"]
    lines = subprocess.run([*cmd, "--severity", "high"], env=env, capture_output=True, text=True,
                           timeout=60).stdout.splitlines()
    assert len(lines) == 2 and {line.split("]")[0].split("[")[1].strip() for line in lines} == {"HIGH", "CRITICAL"}
    # c1 was shown by the run before (an alert is shown once, across runs); c2 is new
    publish_alerts(pipeline, [alert("c2", rule="other", severity="low")])
    out = subprocess.run([*cmd, "--json", "--rule", "other"], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert [json.loads(x)["id"] for x in out.splitlines()] == ["c2"]


class SlowReceiver:
    """Answers each POST after ``delay`` seconds, or dribbles its answer a byte every ``drip`` seconds."""

    def __init__(self, delay: float = 0.0, drip: float | None = None) -> None:
        self.received: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(delay)
                if drip is not None:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(drip)
                    return
                receiver.received.append(body["id"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_a_dribbling_receiver_is_cut_off_at_the_deadline() -> None:
    receiver = SlowReceiver(drip=0.4)  # 38 bytes: 15 s for the whole answer; every read well within 2 s
    started = time.monotonic()
    try:
        with pytest.raises(httpx.TimeoutException, match="deadline"):
            WebhookForwarder(receiver.url, retries=0, timeout=2.0, deadline=1.5).deliver(alert())
    finally:
        receiver.close()
    assert time.monotonic() - started < 4, "one attempt took past its deadline"


def test_retries_are_capped_and_the_backoff_has_a_ceiling() -> None:
    from streams.errors import ConfigError

    with pytest.raises(ConfigError, match="retries must be 0 to 10"):
        WebhookForwarder("http://127.0.0.1:9/hook", retries=11)
    sleeps: list[float] = []
    forwarder = WebhookForwarder("http://127.0.0.1:9/hook", retries=4, backoff=10, max_backoff=15,
                                 deadline=1, sleep=sleeps.append)
    with pytest.raises(httpx.TransportError):
        forwarder.deliver(alert())  # nothing listens on port 9
    assert sleeps == [10, 15, 15, 15]
    assert forwarder.worst_case() == 5 * 1 + 10 + 15 * 3


def forward_process(pipeline: Pipeline, url: str, group: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "STREAMS_BROKER": pipeline.bootstrap, "STREAMS_TOPIC_PREFIX": pipeline.settings.topic_prefix,
           "STREAMS_APP_ID": pipeline.settings.app_id, "STREAMS_HOME": str(log.parent / "home")}
    return subprocess.Popen([sys.executable, "-m", "streams", "forward", "webhook", url, "--group", group,
                             "--idle", "15"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def committed(pipeline: Pipeline, group: str) -> int:
    from streams.kafka import connection

    admin = connection.admin(pipeline.settings, pipeline.bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


@pytest.mark.kafka
def test_forwarder_killed_mid_batch_never_skips_an_alert(pipeline: Pipeline, tmp_path: Path) -> None:
    """kill -9 after a few deliveries, then a restart, twice over: every alert reaches the receiver
    at least once, and the committed offsets never run ahead of what was delivered."""
    for loop in range(2):
        ids = [f"k{loop}-{i}" for i in range(10)]
        publish_alerts(pipeline, [alert(i) for i in ids])
        receiver = SlowReceiver(delay=0.3)
        group = f"fwd-kill-{loop}"
        try:
            proc = forward_process(pipeline, receiver.url, group, tmp_path / f"forward-{loop}.log")
            deadline = time.monotonic() + 60
            while len(receiver.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.kill()
            proc.wait()
            delivered_before = len(set(receiver.received))
            assert committed(pipeline, group) <= delivered_before + 1, "committed alerts that were never delivered"
            proc = forward_process(pipeline, receiver.url, group, tmp_path / f"forward-{loop}.log")
            assert proc.wait(timeout=120) == 0
        finally:
            receiver.close()
        assert set(ids) <= set(receiver.received), f"never delivered: {sorted(set(ids) - set(receiver.received))}"


@pytest.mark.kafka
def test_a_slow_receiver_and_a_poison_record_do_not_stop_the_forwarder(pipeline: Pipeline) -> None:
    from kafka import KafkaProducer

    publish_alerts(pipeline, [alert("p1")])
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    producer.send(pipeline.settings.topic("alerts"), value=b'{"not": "an alert"')
    producer.flush()
    producer.close()
    publish_alerts(pipeline, [alert("p2")])
    receiver = SlowReceiver(delay=2.5)  # past the per-read timeout below, within nothing else
    try:
        counts = forward(WebhookForwarder(receiver.url, retries=1, timeout=1.0, deadline=1.5, backoff=0.1),
                         pipeline.settings, pipeline.bootstrap, "fwd-slow", stop_after_idle=2)
    finally:
        receiver.close()
    assert counts == {"delivered": 0, "dead_lettered": 2, "repeats": 0, "bad": 1}
    fast = Receiver()
    try:
        again = forward(WebhookForwarder(fast.url), pipeline.settings, pipeline.bootstrap, "fwd-slow",
                        stop_after_idle=2)
    finally:
        fast.close()
    assert again["delivered"] == 0, "everything was committed once dead-lettered: nothing is delivered twice"
