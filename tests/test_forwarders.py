"""Alert consumers: the webhook forwarder against a server that fails then recovers, permanent
failures dead-lettered, Alertmanager for real, and `streams alerts` on the terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
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
        with httpx.Client() as client:
            WebhookForwarder(receiver.url, retries=5, backoff=0.1, sleep=sleeps.append).deliver(alert(), client)
    finally:
        receiver.close()
    assert receiver.attempts == 4 and receiver.received[0]["id"] == "a1"
    assert sleeps == [0.1, 0.2, 0.4]


def test_webhook_gives_up_on_a_permanent_refusal_and_after_the_last_retry() -> None:
    receiver = Receiver(fail=100)
    try:
        with httpx.Client() as client:
            with pytest.raises(PermanentFailure):
                WebhookForwarder(receiver.url, sleep=lambda s: None).deliver(alert(rule="refused"), client)
            assert receiver.attempts == 1
            with pytest.raises(httpx.HTTPStatusError):
                WebhookForwarder(receiver.url, retries=2, sleep=lambda s: None).deliver(alert(), client)
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
    assert counts == {"delivered": 2, "dead_lettered": 1, "repeats": 0}
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
    assert again == {"delivered": 0, "dead_lettered": 0, "repeats": 0}


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
    assert counts == {"delivered": 2, "dead_lettered": 0, "repeats": 1}
    assert again == {"delivered": 1, "dead_lettered": 0, "repeats": 1}
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
        with httpx.Client() as client:
            AlertmanagerForwarder(base).deliver(news, client)
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
