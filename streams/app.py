"""The Faust wiring, in one place: the app, its topics and tables, and one thin agent per stage.

    articles.raw ─▶ clean ─▶ articles.clean ─▶ dedup ─▶ articles.unique ─▶ tag ─▶ articles.tagged ─▶ alert ─▶ alerts
                     └─▶ articles.deadletter       └─▶ articles.duplicates  └─▶ entity.mentions ─▶ bursts ─▶ alerts

Each agent turns a message into exactly one outcome (an output event, a duplicate or a dead
letter) by calling the stage's Kafka-free logic in :mod:`streams.stages`, and counts it. Any
exception from stage logic dead-letters that message with a traceback summary; the partition
keeps flowing. Run it with ``streams worker``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from datetime import UTC, datetime
from functools import cached_property

import faust

from streams.broker import bootstrap_servers, client_options, faust_credentials
from streams.events import CleanArticle, DeadLetter, MentionBatch, TaggedArticle
from streams.ingest import IngestTokens, handle_post
from streams.metrics import Metrics
from streams.schemas import openapi
from streams.seek_fence import install as install_seek_fence
from streams.settings import Settings, get_settings
from streams.stages import clean_message, traceback_summary
from streams.stages.alert import RuleEngine, load_rules
from streams.stages.burst import BurstConfig, BurstDetector, burst_alert, mention_batches
from streams.stages.dedup import Deduplicator, mark_duplicate, mark_unique
from streams.stages.tag import Tagger
from streams.stages.validate import dead_letter
from streams.topics import MAX_MESSAGE_BYTES

install_seek_fence()  # faust can skip inputs that were fetched before a seek: see streams/seek_fence.py


class StreamsApp(faust.App):
    """The Faust app plus what its agents share: settings, metrics and the loaded stage models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        super().__init__(
            settings.app_id,
            broker=f"kafka://{bootstrap_servers(settings)}",
            broker_credentials=faust_credentials(settings),
            store="memory://",
            value_serializer="raw",
            key_serializer="raw",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            processing_guarantee=settings.processing_guarantee,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            datadir=str(settings.data_dir),
            producer_max_request_size=MAX_MESSAGE_BYTES,
            producer_linger=0.005,
            consumer_max_fetch_size=MAX_MESSAGE_BYTES,
            stream_wait_empty=False,
            broker_commit_interval=0.5,
            # Recovery after a crash or a stall (README, Reliability): static membership, so a worker
            # restarted within the session timeout takes its partitions back without a rebalance, and
            # a session timeout of seconds, so a dead or stopped worker's share moves on that soon.
            consumer_group_instance_id=settings.worker_id or f"{socket.gethostname()}-{settings.web_port}",
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=settings.session_timeout / 5,
            broker_rebalance_timeout=settings.session_timeout * 2,
        )

    @cached_property
    def tagger(self) -> Tagger:
        s = self.settings
        return Tagger.from_settings(s)

    @cached_property
    def ingest_tokens(self) -> IngestTokens:
        return IngestTokens.from_settings(self.settings)

    @cached_property
    def admin(self):
        """A kafka-python admin client for the lag probe (blocking: used from an executor)."""
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=bootstrap_servers(self.settings), client_id=f"{self.conf.id}-lag",
                                **client_options(self.settings))

    @cached_property
    def rules(self) -> list:
        return load_rules(self.settings.rules, set(self.tagger.kb.entities))


class StreamsWorker(faust.Worker):
    """Faust's worker without its terminal spinner. To spin on every log message the spinner sets the
    root logger to DEBUG, so each debug call in aiokafka and Faust built a log record nobody printed:
    5 % of a saturated worker's time (py-spy)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


log = logging.getLogger("streams")
app = StreamsApp(get_settings())
settings, metrics = app.settings, app.metrics


def _topic(name: str, partitions: int | None = None) -> faust.TopicT:
    return app.topic(settings.topic(name), value_type=bytes, key_type=bytes, partitions=partitions)


raw_topic = _topic("articles.raw")
clean_topic = _topic("articles.clean", partitions=1)
unique_topic = _topic("articles.unique")
duplicates_topic = _topic("articles.duplicates")
tagged_topic = _topic("articles.tagged")
alerts_topic = _topic("alerts")
deadletter_topic = _topic("articles.deadletter")
mentions_topic = _topic("entity.mentions")

# Dedup state: one changelog-backed table (its lookup indexes are derived in memory), one partition
# like the topic that feeds it.
JSON = faust.Schema(key_serializer="json", value_serializer="json")
dedup_signatures = app.Table("dedup-signatures", partitions=1, schema=JSON)
# Alert suppression: rule + story -> when it fired; co-partitioned with articles.tagged (key = story).
alerts_fired = app.Table("alerts-fired", schema=JSON)
# Trend bursts: per-entity minute and hour buckets, on the entity's entity.mentions partition.
burst_counts = app.Table("burst-counts", schema=JSON)


def now() -> datetime:
    return datetime.now(UTC)


async def send_dead_letter(stage: str, letter: DeadLetter, event: faust.EventT) -> None:
    msg = event.message
    letter.stage, letter.topic, letter.partition, letter.offset = stage, msg.topic, msg.partition, msg.offset
    metrics.deadletters.labels(stage, letter.reason).inc()
    metrics.articles_out.labels(stage, "deadletter").inc()
    await deadletter_topic.send(key=(letter.id or "").encode() or None, value=letter.dumps())


async def stage_failed(stage: str, event: faust.EventT, exc: BaseException) -> None:
    """A bug or a poison message: dead-letter it with the traceback summary and carry on."""
    data = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
    msg_id = event.key.decode("utf-8", "replace") if isinstance(event.key, bytes) else None
    try:  # the input's coordinates on articles.raw, when the event still carries them
        raw_ref = json.loads(data).get("raw_ref")
    except (ValueError, AttributeError):
        raw_ref = None
    letter = dead_letter(data, stage, "stage_error", traceback_summary(exc), msg_id, raw_ref=raw_ref)
    await send_dead_letter(stage, letter, event)


@app.agent(raw_topic)
async def clean(stream: faust.StreamT) -> None:
    async for event in stream.events():
        metrics.articles_in.labels("clean").inc()
        started = time.perf_counter()
        ingested = datetime.fromtimestamp(event.message.timestamp, UTC)
        raw_ref = f"{event.message.partition}:{event.message.offset}"
        out = clean_message(event.value or b"", ingested, settings.max_body_bytes, raw_ref)
        metrics.stage_seconds.labels("clean").observe(time.perf_counter() - started)
        if isinstance(out, DeadLetter):
            await send_dead_letter("clean", out, event)
            continue
        await clean_topic.send(key=out.id.encode(), value=out.dumps(), partition=0)
        metrics.articles_out.labels("clean", "clean").inc()
        metrics.observe_latency("clean", now(), out.ingested_at, out.published_at)


@app.agent(clean_topic)
async def dedup(stream: faust.StreamT) -> None:
    dedup_state = Deduplicator.from_settings(settings, dedup_signatures)
    next_expiry = 0.0
    async for event in stream.events():
        metrics.articles_in.labels("dedup").inc()
        started = time.perf_counter()
        if started >= next_expiry:  # tables change only inside stream iteration, so expire here
            dedup_state.expire(time.time())
            next_expiry = started + settings.dedup_expire_interval
        try:
            article = CleanArticle.model_validate_json(event.value)
            verdict = dedup_state.check(article)
        except Exception as exc:
            await stage_failed("dedup", event, exc)
            continue
        metrics.stage_seconds.labels("dedup").observe(time.perf_counter() - started)
        metrics.dedup_state.set(len(dedup_signatures))
        if verdict.is_duplicate:
            metrics.duplicates.labels(verdict.kind).inc()
            metrics.articles_out.labels("dedup", "duplicate").inc()
            await duplicates_topic.send(key=article.id.encode(), value=mark_duplicate(article, verdict).dumps())
        else:  # keyed by story, so a fuller version meets its story's alert suppression in one partition
            unique = mark_unique(article, verdict)
            metrics.articles_out.labels("dedup", "fuller" if unique.supersedes else "unique").inc()
            await unique_topic.send(key=unique.story.encode(), value=unique.dumps())
        metrics.observe_latency("dedup", now(), article.ingested_at, article.published_at)


@app.agent(unique_topic)
async def tag(stream: faust.StreamT) -> None:
    """One article at a time. Batching with ``stream.take_events`` (manual acks) lost 2 of 1,500
    inputs in a takeover after a rebalance, in two of five runs of the two-worker kill test (compare
    faust-streaming #527/#604 on manual acks and rebalances); per-event iteration acks an event only
    after its outputs are sent, and lost none. Batches would make tagging with the shipped NER about
    10 % faster (measured in-process, 8 articles per ``nlp.pipe`` call); that needs an ack-safe way
    to batch."""
    tagger = app.tagger
    async for event in stream.events():
        metrics.articles_in.labels("tag").inc()
        started = time.perf_counter()
        try:
            article = CleanArticle.model_validate_json(event.value)
            tagged = tagger.tag(article)
        except Exception as exc:
            await stage_failed("tag", event, exc)
            continue
        metrics.stage_seconds.labels("tag").observe(time.perf_counter() - started)
        await tagged_topic.send(key=tagged.story.encode(), value=tagged.dumps())
        for partition, batch in mention_batches([tagged], settings.partitions).items():
            await mentions_topic.send(value=batch.dumps(), partition=partition)
        metrics.articles_out.labels("tag", "tagged").inc()
        metrics.observe_latency("tag", now(), tagged.ingested_at, tagged.published_at)


@app.agent(tagged_topic)
async def alert(stream: faust.StreamT) -> None:
    engine = RuleEngine(app.rules, alerts_fired)
    async for event in stream.events():
        metrics.articles_in.labels("alert").inc()
        started = time.perf_counter()
        try:
            article = TaggedArticle.model_validate_json(event.value)
            alerts = engine.evaluate(article, now())
        except Exception as exc:
            await stage_failed("alert", event, exc)
            continue
        metrics.stage_seconds.labels("alert").observe(time.perf_counter() - started)
        for a in alerts:
            metrics.alerts.labels(a.rule_id, a.severity).inc()
            await alerts_topic.send(key=a.id.encode(), value=a.dumps())
            metrics.observe_latency("alert", a.created_at, article.ingested_at, article.published_at)
        metrics.articles_out.labels("alert", "alerted" if alerts else "no_alert").inc()


@app.agent(mentions_topic)
async def bursts(stream: faust.StreamT) -> None:
    detector = BurstDetector(burst_counts, BurstConfig(
        recent_minutes=settings.burst_recent_minutes, baseline_hours=settings.burst_baseline_hours,
        factor=settings.burst_factor, min_count=settings.burst_min_count))
    next_expiry = 0.0
    async for event in stream.events():
        try:
            batch = MentionBatch.model_validate_json(event.value)
        except Exception:  # an internal event, not an input article: log it, never dead-letter it
            log.exception("bad entity mentions at offset %s", event.message.offset)
            continue
        for mention in batch.mentions:
            if time.monotonic() >= next_expiry:
                detector.expire(mention.at)
                next_expiry = time.monotonic() + 600
            burst = detector.mention(mention.entity, mention.at, mention.count)
            if burst is not None:
                a = burst_alert(burst, name=mention.name, article_id=mention.article)
                metrics.alerts.labels(a.rule_id, a.severity).inc()
                await alerts_topic.send(key=a.id.encode(), value=a.dumps())


LOGICAL_TOPICS = {settings.topic(t): t for t in ("articles.raw", "articles.clean", "articles.unique",
                                                 "articles.tagged")}


@app.timer(interval=settings.lag_interval)
async def report_consumer_lag() -> None:
    """Lag of the partitions this worker owns: the highwater mark minus the group's committed offset.

    Each worker reports only its own partitions, so sums over workers are right."""
    assigned = [tp for tp in app.consumer.assignment() if tp.topic in LOGICAL_TOPICS]
    if not assigned:
        metrics.consumer_lag.clear()
        return
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    def committed() -> dict:
        offsets = app.admin.list_group_offsets({app.conf.id: [TopicPartition(t, p) for t, p in assigned]})
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.get(app.conf.id, {}).items()}

    try:
        done = await asyncio.get_running_loop().run_in_executor(None, committed)
    except (KafkaError, OSError) as exc:  # the broker is away: skip this round; a probe never stops a worker
        log.warning("consumer lag not measured: %s", exc)
        return
    metrics.consumer_lag.clear()
    for tp in assigned:
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            continue
        lag = highwater - max(0, done.get((tp.topic, tp.partition), 0))
        metrics.consumer_lag.labels(LOGICAL_TOPICS[tp.topic], str(tp.partition)).set(max(0, lag))


@app.page("/articles")
class ArticlesView(faust.web.View):
    """``POST /articles``: one JSON article or an array; 202 with the ids once Kafka has them.

    With ingest tokens set, a request without the right bearer token gets 401 and no detail, before
    its body is read; the refusal is counted by reason."""

    async def post(self, request: faust.web.Request) -> faust.web.Response:
        refusal = app.ingest_tokens.refusal(request.headers.get("Authorization"))
        if refusal:
            metrics.ingest_rejected.labels("http", refusal).inc()
            metrics.ingested.labels("http", "rejected").inc()
            return self.json({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            body: bytes | None = await request.read()
        except Exception:  # aiohttp refuses a body over its limit (the same 1 MiB)
            body = None
        result = handle_post(body, request.headers.get("Content-Type"), settings.max_body_bytes)
        if result.status != 202:
            for err in result.body.get("rejected", [{"reason": result.body["error"]}]):
                metrics.ingest_rejected.labels("http", err["reason"]).inc()
            metrics.ingested.labels("http", "rejected").inc(max(1, len(result.body.get("rejected", []))))
            return self.json(result.body, status=result.status)
        sent = [await raw_topic.send(key=a.id.encode(), value=a.dumps()) for a in result.articles]
        await asyncio.gather(*sent)  # delivery confirmed before we answer
        metrics.ingested.labels("http", "accepted").inc(len(result.articles))
        return self.json(result.body, status=202)


@app.page("/openapi.json")
async def openapi_page(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return web.json(openapi())


@app.page("/metrics")
async def metrics_page(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return web.bytes(metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
