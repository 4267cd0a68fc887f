"""Downstream of ``alerts``: following them on a terminal, and forwarding them to a webhook or to
Prometheus Alertmanager.

Forwarders read with their own consumer group and commit an alert's offset only after that alert
was delivered or dead-lettered (to ``alerts.deadletter``, with the reason and the alert), one
record at a time, so nothing is lost when a forwarder restarts or is killed. A record on ``alerts``
that is not an alert is dead-lettered too, never fatal. Repeats stop at the door: the pipeline is at-least-once, so a
replay after a worker's crash can send an alert again (with the same deterministic id), and the
follower and the forwarders remember the ids they showed or delivered (:class:`SeenIds`, bounded,
kept in ``STREAMS_HOME`` across restarts) and drop such repeats.

With ``STREAMS_WEBHOOK_SECRET`` set, every delivery is signed the way Stripe signs its webhooks: a
``Streams-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` header, so a receiver
can tell our alerts from anyone else's posts and refuse replays of old ones (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from streams.contract.events import Alert
from streams.contract.topics import ALERTS, ALERTS_DEADLETTER
from streams.contract.validate import dead_letter
from streams.errors import ConfigError, DeliveryError
from streams.kafka import connection
from streams.settings import Settings

SEVERITIES = ["info", "low", "medium", "high", "critical"]
STYLE = {"critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m", "low": "\033[36m", "info": "\033[37m"}


def format_alert(alert: Alert, color: bool | None = None) -> str:
    """One readable line: severity, rule, title, evidence."""
    color = sys.stdout.isatty() if color is None else color
    ev = alert.evidence
    why = ", ".join([*ev.entities, *ev.topics, *ev.keywords])
    if alert.kind in ("breaking", "updated"):
        why = f"{len(alert.sources)} sources: {', '.join(alert.sources)}"
    sev = f"[{alert.severity.upper():8}]"
    if color:
        sev = f"{STYLE.get(alert.severity, '')}{sev}\033[0m"
    return f"  {sev} {alert.rule_id:26} {alert.title[:60]:60}  ({why[:60]})"


def alert_consumer(settings: Settings, bootstrap: str, group: str | None, from_beginning: bool, **options: object):
    return connection.consumer(settings, settings.topic(ALERTS), bootstrap=bootstrap, group_id=group,
                               auto_offset_reset="earliest" if from_beginning else "latest",
                               enable_auto_commit=False, isolation_level="read_committed", **options)


def follow(consumer, stop_after_idle: float | None = None) -> Iterator[object]:
    """Records of ``alerts`` as they arrive, until idle for ``stop_after_idle`` seconds."""
    idle_since = time.monotonic()
    while True:
        batch = consumer.poll(timeout_ms=500)
        if not batch:
            if stop_after_idle is not None and time.monotonic() - idle_since > stop_after_idle:
                return
            continue
        idle_since = time.monotonic()
        for records in batch.values():
            yield from records


def parse(record) -> Alert | None:
    """The alert a record carries, or None for a record that is not one (never fatal to a reader)."""
    try:
        return Alert.model_validate_json(record.value)
    except ValueError:
        return None


def matches(alert: Alert, min_severity: str | None, rules: list[str] | None) -> bool:
    if min_severity and SEVERITIES.index(alert.severity) < SEVERITIES.index(min_severity):
        return False
    return not rules or alert.rule_id in rules


class SeenIds:
    """The last ``limit`` alert ids shown or delivered, remembered in a file across restarts.

    An append-only file of ids (one per line, flushed at once), rewritten with the newest ``limit``
    when it grows past twice that. An id is written *after* its delivery: a crash between the two
    is the one way a repeat still gets through."""

    def __init__(self, path: Path, limit: int = 100_000) -> None:
        self.path, self.limit = path, limit
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").split() if path.exists() else []
        self.ids: dict[str, None] = dict.fromkeys(lines[-limit:])  # insertion-ordered: oldest first
        self.written = len(lines)

    @classmethod
    def for_reader(cls, settings: Settings, name: str) -> SeenIds:
        """The memory of one reader of this deployment's alerts (``follow``, ``forward-webhook-<group>``)."""
        return cls(settings.home / "seen" / f"{settings.topic_prefix}{settings.app_id}.{name}.ids")

    def __contains__(self, alert_id: str) -> bool:
        return alert_id in self.ids

    def add(self, alert_id: str) -> None:
        if alert_id in self.ids:
            return
        self.ids[alert_id] = None
        if len(self.ids) > self.limit:
            del self.ids[next(iter(self.ids))]
        self.written += 1
        if self.written > 2 * self.limit:  # compact: keep the newest
            self.path.write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")
            self.written = len(self.ids)
        else:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(f"{alert_id}\n")


class PermanentFailure(DeliveryError):
    """The receiver refused the alert for good (a 4xx other than 408/429)."""


SIGNATURE_HEADER = "Streams-Signature"


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Streams-Signature`` value of one delivery: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


SESSION_TIMEOUT_MS = 10_000  # as the workers' STREAMS_SESSION_TIMEOUT default (kafka-python's is 45 s)
MAX_RETRIES = 10  # a ceiling on --retries: past it a dead receiver holds every alert behind it too long


@dataclass
class WebhookForwarder:
    """POSTs each alert as JSON; retries with exponential backoff (capped at ``max_backoff``) on
    errors, 5xx, 408 and 429.

    Every attempt has a whole-request ``deadline``, besides httpx's per-read ``timeout``: a receiver
    that dribbles its answer a byte at a time is cut off (the attempt is abandoned to a daemon thread
    and counts as a timeout). ``secret`` signs each attempt (with that attempt's time); ``headers`` are
    sent as they are, for receivers that want a static credential."""

    url: str
    retries: int = 5
    backoff: float = 0.5
    timeout: float = 10.0
    deadline: float = 15.0
    max_backoff: float = 30.0
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if not 0 <= self.retries <= MAX_RETRIES:
            raise ConfigError(f"retries must be 0 to {MAX_RETRIES}, not {self.retries}: a receiver that is down "
                              "would hold every alert behind it; failed alerts go to alerts.deadletter")

    @classmethod
    def from_settings(cls, url: str, settings: Settings, **kwargs) -> WebhookForwarder:
        return cls(url, secret=settings.webhook_secret, headers=settings.webhook_headers, **kwargs)

    def worst_case(self) -> float:
        """The longest one alert's delivery can take: every attempt to its deadline, every backoff."""
        backoffs = sum(min(self.max_backoff, self.backoff * 2 ** i) for i in range(self.retries))
        return (self.retries + 1) * self.deadline + backoffs

    def payload(self, alert: Alert) -> dict | list:
        return alert.model_dump(mode="json")

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        """The exact bytes to post and the headers that go with them (signed when there is a secret)."""
        body = json.dumps(self.payload(alert), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {name: value.get_secret_value() for name, value in self.headers.items()}
        headers["Content-Type"] = "application/json"
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret.get_secret_value().encode(), body, int(self.clock()))
        return body, headers

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """One attempt, within ``deadline`` seconds from start to the last byte of the answer."""
        outcome: dict[str, object] = {}

        def attempt() -> None:
            try:
                with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout))) as client:
                    outcome["response"] = client.post(self.url, content=body, headers=headers)
            except Exception as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=attempt, name="webhook-attempt", daemon=True)
        worker.start()
        worker.join(self.deadline)
        if worker.is_alive():
            raise httpx.TimeoutException(f"{self.url} did not answer within the {self.deadline:g} s deadline")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["response"]  # type: ignore[return-value]

    def deliver(self, alert: Alert) -> None:
        """Deliver or raise: :class:`PermanentFailure`, or the last error once retries are spent."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self.post(*self.request(alert))
                if response.status_code < 300:
                    return
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    raise PermanentFailure(f"{self.url} answered {response.status_code}: {response.text[:200]}")
                error: Exception = httpx.HTTPStatusError(f"{response.status_code}", request=response.request,
                                                         response=response)
            except httpx.TransportError as exc:
                error = exc
            if attempt < self.retries:
                self.sleep(delay)
                delay = min(self.max_backoff, delay * 2)
        raise error


@dataclass
class AlertmanagerForwarder(WebhookForwarder):
    """Posts to Alertmanager's ``/api/v2/alerts`` so news alerts use the receivers teams already have."""

    resolve_after: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.url = self.url.rstrip("/") + "/api/v2/alerts"

    def payload(self, alert: Alert) -> list[dict]:
        ev = alert.evidence
        return [{
            "labels": {"alertname": "NewsAlert", "rule_id": alert.rule_id, "severity": alert.severity,
                       "source": alert.source or "", "alert_id": alert.id, "kind": alert.kind,
                       "story_id": alert.story_id or ""},
            "annotations": {"title": alert.title, "url": alert.url or "",
                            "evidence": ", ".join([*ev.entities, *ev.topics, *ev.keywords]),
                            "articles": ", ".join(alert.article_ids), "sources": ", ".join(alert.sources)},
            "startsAt": alert.created_at.isoformat(),
            "endsAt": (alert.created_at + self.resolve_after).isoformat(),
            "generatorURL": alert.url or "",
        }]


def forward(forwarder: WebhookForwarder, settings: Settings, bootstrap: str, group: str,
            stop_after_idle: float | None = None, seen: SeenIds | None = None) -> dict[str, int]:
    """Deliver every alert of the group's backlog and then new ones, each id once; returns counts by
    outcome (``repeats``: alerts already delivered, dropped; ``bad``: records that are not alerts,
    dead-lettered).

    One record per poll, and its offset committed only once it was delivered, dead-lettered or
    dropped as a repeat: a crash repeats at most the alert in flight and never skips one. The poll
    interval allowed is the forwarder's worst case per alert, so a slow receiver does not get the
    forwarder evicted from its group (heartbeats run on their own thread); a forwarder that dies is
    evicted after :data:`SESSION_TIMEOUT_MS`, so its restart or a second forwarder takes over soon."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    seen = seen or SeenIds.for_reader(settings, f"forward-{group}")
    consumer = alert_consumer(settings, bootstrap, group, from_beginning=True, max_poll_records=1,
                              max_poll_interval_ms=int(1000 * (forwarder.worst_case() + 30)),
                              session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=SESSION_TIMEOUT_MS // 5)
    producer = connection.producer(settings, bootstrap, acks="all")
    counts = {"delivered": 0, "dead_lettered": 0, "repeats": 0, "bad": 0}

    def dead_letter_it(record, reason: str, detail: str, alert_id: str | None) -> None:
        letter = dead_letter(record.value, "forward", reason, detail[:500], alert_id)
        producer.send(settings.topic(ALERTS_DEADLETTER), key=alert_id.encode() if alert_id else None,
                      value=letter.dumps())
        producer.flush()

    try:
        for record in follow(consumer, stop_after_idle):
            alert = parse(record)
            if alert is None:
                dead_letter_it(record, "bad_alert", "not an alert event", None)
                counts["bad"] += 1
            elif alert.id in seen:
                counts["repeats"] += 1
            else:
                try:
                    forwarder.deliver(alert)
                    seen.add(alert.id)
                    counts["delivered"] += 1
                except (PermanentFailure, httpx.HTTPError) as exc:
                    dead_letter_it(record, "delivery_failed", str(exc), alert.id)
                    counts["dead_lettered"] += 1
            done = OffsetAndMetadata(record.offset + 1, "", -1)
            consumer.commit({TopicPartition(record.topic, record.partition): done})
    finally:
        consumer.close()
        producer.close()
    return counts
