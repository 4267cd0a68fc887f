"""The Faust wiring, in one place: the app, its topics and tables, and one thin agent per hop.

    articles.raw ─▶ clean ─▶ articles.clean ─▶ dedup+stories ─▶ articles.unique ─▶ tag+alert ─▶ articles.tagged, alerts
                      └─▶ articles.deadletter      └─▶ duplicates, stories            └─▶ entity.mentions ─▶ bursts

Each agent turns a message into exactly one outcome (an output event, a duplicate or a dead
letter) by calling the stage's Kafka-free logic in :mod:`streams.stages`, and counts it. Any
exception from stage logic dead-letters that message with a traceback summary; the partition
keeps flowing. Run it with ``streams worker``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property, partial

import faust
import faust.streams as faust_streams
from aiohttp.web import AppRunner
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams import step
from streams.build import Stages
from streams.contract.events import Alert, CleanArticle, DeadLetter, MentionBatch, TaggedArticle
from streams.contract.schemas import openapi
from streams.contract.topics import (
    ALERTS,
    BY_NAME,
    CLEAN,
    DEADLETTER,
    DUPLICATES,
    MAX_MESSAGE_BYTES,
    MENTIONS,
    RAW,
    STORIES,
    TAGGED,
    TOPICS,
    UNIQUE,
)
from streams.kafka import connection
from streams.kafka.consumer import transport_class
from streams.kafka.monitor import QuietMonitor
from streams.metrics import Metrics
from streams.settings import Settings, get_settings
from streams.sources.ingest import BODY_DEADLINE_S, HEADER_DEADLINE_S, IngestTokens, handle_post, host_allowed
from streams.stages.burst import burst_alert, mention_batches
from streams.stages.clean import clean_message
from streams.stages.dedup import Verdict, mark_duplicate, mark_unique
from streams.stages.stories import Assignment, story_alert, story_update
from streams.stages.tag import BATCH as TAG_BATCH


class StreamsApp(faust.App):
    """The Faust app plus what its agents share: settings, metrics and the loaded stage models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        super().__init__(
            settings.app_id,
            broker=f"kafka://{connection.bootstrap_servers(settings)}",
            broker_credentials=connection.faust_credentials(settings),
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
            Monitor=QuietMonitor,
            consumer_max_fetch_size=MAX_MESSAGE_BYTES,
            **connection.WORKER_FLOW,
            # Recovery after a crash or a stall (docs/reliability.md): static membership, so a worker
            # restarted within the session timeout takes its partitions back without a rebalance, and
            # a session timeout of seconds, so a dead or stopped worker's share moves on that soon.
            consumer_group_instance_id=settings.worker_id or f"{socket.gethostname()}-{settings.web_port}",
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=settings.session_timeout / 5,
            broker_rebalance_timeout=settings.session_timeout * 2,
            # Faust's own pages would tell anyone who reaches the port whether an article id was seen
            # (/table/) and where the workers are (/router/): off; ours are /articles, /metrics, /openapi.json
            web_tables_enabled=False,
            web_router_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
        )

    def _new_transport(self) -> faust.types.TransportT:
        """Faust's aiokafka transport with the consumer that never commits past a record it did not
        deliver (:mod:`streams.kafka.consumer`)."""
        return transport_class()(self.conf.broker_consumer, self)

    def _new_web(self) -> AiohttpWeb:
        return Web(self)

    @cached_property
    def stages(self) -> Stages:
        return Stages(self.settings)

    @cached_property
    def ingest_tokens(self) -> IngestTokens:
        return IngestTokens.from_settings(self.settings)

    @cached_property
    def admin(self):
        """A kafka-python admin client for the lag probe (blocking: used from an executor)."""
        return connection.admin(self.settings, client_id=f"{self.conf.id}-lag")


class Web(AiohttpWeb):
    """Faust's aiohttp server with a deadline on a request's headers. aiohttp closes a connection that
    is still waiting for a whole request when its keep-alive timer fires, a timer it starts when the
    connection opens; so the keep-alive timeout is the header deadline, and a client dribbling its
    headers a byte at a time is cut off after it instead of holding a connection for minutes."""

    def __init__(self, app: faust.types.AppT, **kwargs: object) -> None:
        super().__init__(app, **kwargs)
        self._runner = AppRunner(self.web_app, access_log=None, keepalive_timeout=HEADER_DEADLINE_S)


class StreamsWorker(faust.Worker):
    """Faust's worker without its terminal spinner. To spin on every log message the spinner sets the
    root logger to DEBUG, so each debug call in aiokafka and Faust built a log record nobody printed:
    5 % of a saturated worker's time (py-spy)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


log = logging.getLogger("streams")
app = StreamsApp(get_settings())
settings, metrics = app.settings, app.metrics


def _topic(name: str) -> faust.TopicT:
    return app.topic(settings.topic(name), value_type=bytes, key_type=bytes, partitions=BY_NAME[name].partitions)


raw_topic = _topic(RAW)
clean_topic = _topic(CLEAN)
unique_topic = _topic(UNIQUE)
duplicates_topic = _topic(DUPLICATES)
tagged_topic = _topic(TAGGED)
alerts_topic = _topic(ALERTS)
deadletter_topic = _topic(DEADLETTER)
mentions_topic = _topic(MENTIONS)
stories_topic = _topic(STORIES)

# Dedup state: one changelog-backed table (its lookup indexes are derived in memory), one partition
# like the topic that feeds it.
JSON = faust.Schema(key_serializer="json", value_serializer="json")
dedup_signatures = app.Table("dedup-signatures", partitions=1, schema=JSON)
# Stories state: story id -> story (centroid, sources, first/last seen), in the same single partition.
story_state = app.Table("stories", partitions=1, schema=JSON)
# Alert suppression: rule + story -> when it fired; co-partitioned with articles.unique (key = story).
alerts_fired = app.Table("alerts-fired", schema=JSON)
# Trend bursts: per-entity minute and hour buckets, on the entity's entity.mentions partition.
burst_counts = app.Table("burst-counts", schema=JSON)


TAG_WITHIN = 0.05  # the longest wait to fill a tag batch (s)


def now() -> datetime:
    return datetime.now(UTC)


async def send(topic: faust.TopicT, value: bytes, key: bytes | None = None, partition: int | None = None) -> None:
    """Hand an agent's output to Faust's producer. Not through ``Topic.send``: its per-message
    futures and sensor calls cost about 20 µs a message and give this pipeline nothing
    (``streams bench-hop``, docs/benchmark.md). The guarantee is the same: the consumer flushes this
    producer before every commit, so no input's offset is committed before its outputs were
    acknowledged; a message the producer gives up on is logged, as Faust logs it."""
    delivery = await app.producer.send(topic.get_topic_name(), key, value, partition, None, None)
    delivery.add_done_callback(_undelivered)


def _undelivered(delivery: asyncio.Future) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("a message was not delivered: %r", delivery.exception())


async def send_dead_letter(stage: str, letter: DeadLetter, event: faust.EventT) -> None:
    msg = event.message
    letter.stage, letter.topic, letter.partition, letter.offset = stage, msg.topic, msg.partition, msg.offset
    metrics.deadletters.labels(stage, letter.reason).inc()
    metrics.articles_out.labels(stage, "deadletter").inc()
    await send(deadletter_topic, letter.dumps(), (letter.id or "").encode() or None)


@app.agent(raw_topic)
async def clean(stream: faust.StreamT) -> None:
    async for event in stream.events():
        with metrics.agent_time("clean") as clock:
            ingested = datetime.fromtimestamp(event.message.timestamp, UTC)
            raw_ref = f"{event.message.partition}:{event.message.offset}"
            out = step.run(metrics, "clean", event.value, event.key, partial(
                clean_message, ingested_at=ingested, max_body_bytes=settings.max_body_bytes, raw_ref=raw_ref))
            if isinstance(out, DeadLetter):
                await clock.wait(send_dead_letter("clean", out, event))
                continue
            await clock.wait(send(clean_topic, out.dumps(), out.id.encode(), partition=0))
            metrics.articles_out.labels("clean", "clean").inc()
            metrics.observe_latency("clean", now(), out.ingested_at, out.published_at)


@app.agent(clean_topic)
async def dedup(stream: faust.StreamT) -> None:
    """Dedup, then stories, in one hop: both need every article in one order (one partition), and a
    copy gets its original's story at once (docs/stories.md says why they share the hop)."""
    dedup_state = app.stages.dedup(dedup_signatures)
    stories = app.stages.stories(story_state)

    def check(data: bytes) -> tuple[CleanArticle, Verdict, Assignment | None]:
        """The article (unique: with its story), dedup's verdict, and where stories placed it."""
        article = CleanArticle.model_validate_json(data)
        verdict = dedup_state.check(article)
        if verdict.is_duplicate:
            return article, verdict, None
        started = time.perf_counter()
        article, placed = stories.place(mark_unique(article, verdict))
        metrics.stage_seconds.labels("stories").observe(time.perf_counter() - started)
        return article, verdict, placed

    next_expiry = 0.0
    async for event in stream.events():
        with metrics.agent_time("dedup") as clock:
            if (started := time.perf_counter()) >= next_expiry:  # tables change only inside stream iteration
                dedup_state.expire(time.time())
                next_expiry = started + settings.dedup_expire_interval
                metrics.stories_state_bytes.set(stories.state_bytes_per_story())
            out = step.run(metrics, "dedup", event.value, event.key, check)
            if isinstance(out, DeadLetter):
                await clock.wait(send_dead_letter("dedup", out, event))
                continue
            article, verdict, placed = out
            metrics.dedup_state.set(len(dedup_signatures))
            if placed is None:
                metrics.duplicates.labels(verdict.kind).inc()
                metrics.articles_out.labels("dedup", "duplicate").inc()
                duplicate = mark_duplicate(article, verdict, stories.story_of(verdict.duplicate_of or ""))
                await clock.wait(send(duplicates_topic, duplicate.dumps(), article.id.encode()))
            else:  # keyed by story, so an article meets its story's alert suppression in one partition
                metrics.articles_out.labels("dedup", "fuller" if article.supersedes else "unique").inc()
                outcome = "replay" if placed.replay else "opened" if placed.opened else "joined"
                metrics.story_articles.labels(outcome).inc()
                metrics.stories_live.set(len(story_state))
                await clock.wait(send(unique_topic, article.dumps(), article.story.encode()))
                update = story_update(placed.story).dumps()
                await clock.wait(send(stories_topic, update, placed.story_id.encode()))
                if placed.alert is not None:
                    a = story_alert(placed.alert, placed.story, article, now())
                    metrics.alerts.labels(a.rule_id, a.severity).inc()
                    await clock.wait(send(alerts_topic, a.dumps(), a.id.encode()))
            metrics.observe_latency("dedup", now(), article.ingested_at, article.published_at)


@app.agent(unique_topic)
async def tag(stream: faust.StreamT) -> None:
    """Tag, then alert, in one hop, in batches of up to ``TAG_BATCH`` (16) articles (or what arrived
    within ``TAG_WITHIN`` s). The NER runs over a batch with ``nlp.pipe``; a batch's mentions go out in
    one message per partition. Each tagged article goes to ``articles.tagged`` for consumers and through
    the alert rules here, instead of being read back from that topic by a hop of its own: a consumed
    record less per article (docs/benchmark.md). Both topics are keyed by story, so the rules'
    suppression table is co-partitioned with this input as it was with ``articles.tagged``.

    Faust acks a batch's events once this loop body has sent every output; the offset-safe consumer
    (streams/kafka/consumer.py) commits no offset past an event not acked, so a crash replays at
    most the batch in flight. (Before that consumer, batches lost inputs in takeovers: faust-streaming
    #527/#604.)"""
    tagger = app.stages.tagger
    engine = app.stages.alerts(alerts_fired)

    def evaluate(article: TaggedArticle, _: bytes) -> list[Alert]:
        return engine.evaluate(article, now())

    async for events in stream.take_events(TAG_BATCH, within=TAG_WITHIN):
        tagged: list[tuple[faust.EventT, TaggedArticle, bytes]] = []
        with metrics.agent_time("tag") as clock:
            results = step.run_many(metrics, "tag", [(e.value, e.key) for e in events],
                                    CleanArticle.model_validate_json, tagger.tag_many)
            for event, out in zip(events, results, strict=True):
                if isinstance(out, DeadLetter):
                    await clock.wait(send_dead_letter("tag", out, event))
                    continue
                value = out.dumps()
                tagged.append((event, out, value))
                await clock.wait(send(tagged_topic, value, out.story.encode()))
            articles = [article for _, article, _ in tagged]
            for partition, batch in mention_batches(articles, settings.partitions).items():
                await clock.wait(send(mentions_topic, batch.dumps(), partition=partition))
            finished = now()
            for out in articles:
                metrics.articles_out.labels("tag", "tagged").inc()
                metrics.observe_latency("tag", finished, out.ingested_at, out.published_at)
        with metrics.agent_time("alert") as clock:
            for event, article, value in tagged:
                with handling(event):
                    out = step.run(metrics, "alert", value, event.key, partial(evaluate, article))
                if isinstance(out, DeadLetter):
                    await clock.wait(send_dead_letter("alert", out, event))
                    continue
                for a in out:
                    metrics.alerts.labels(a.rule_id, a.severity).inc()
                    await clock.wait(send(alerts_topic, a.dumps(), a.id.encode()))
                    metrics.observe_latency("alert", a.created_at, article.ingested_at, article.published_at)
                metrics.articles_out.labels("alert", "alerted" if out else "no_alert").inc()


@contextmanager
def handling(event: faust.EventT) -> Iterator[None]:
    """``event`` as the current event while it is handled. A table writes a key's changelog to the
    current event's partition (that partition's owner restores it after a takeover), and in a batch
    from ``take_events`` no event is current in the agent's own task. The context variable is the one
    Faust's stream iterator sets for each event (faust-streaming 0.15.3, the version pinned)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


@app.agent(mentions_topic)
async def bursts(stream: faust.StreamT) -> None:
    detector = app.stages.bursts(burst_counts)
    next_expiry = 0.0
    async for event in stream.events():
        with metrics.agent_time("bursts") as clock:
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
                    await clock.wait(send(alerts_topic, a.dumps(), a.id.encode()))


# the lag probe's topics: those the pipeline's agents read (the internal mentions are not work waiting)
LOGICAL_TOPICS = {settings.topic(t.name): t.name for t in TOPICS if t.agent and t.role != "internal"}


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
        if (refused := misdirected(self.web, request)) is not None:
            metrics.ingest_rejected.labels("http", "wrong_host").inc()
            metrics.ingested.labels("http", "rejected").inc()
            return refused
        refusal = app.ingest_tokens.refusal(request.headers.get("Authorization"))
        if refusal:
            metrics.ingest_rejected.labels("http", refusal).inc()
            metrics.ingested.labels("http", "rejected").inc()
            return self.json({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:  # a client that dribbles its body does not hold a connection open for long
            body: bytes | None = await asyncio.wait_for(request.read(), timeout=BODY_DEADLINE_S)
        except TimeoutError:
            metrics.ingest_rejected.labels("http", "slow_body").inc()
            metrics.ingested.labels("http", "rejected").inc()
            return self.json({"error": "timeout", "detail": f"send the body within {BODY_DEADLINE_S:g} s"},
                             status=408)
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


def misdirected(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response | None:
    """421 for a request whose ``Host`` this worker does not answer for (DNS rebinding), else None."""
    if host_allowed(request.headers.get("Host"), settings):
        return None
    return web.json({"error": "misdirected", "detail": "this worker does not answer for that Host"}, status=421)


@app.page("/openapi.json")
async def openapi_page(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return misdirected(web, request) or web.json(openapi())


@app.page("/metrics")
async def metrics_page(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    return misdirected(web, request) or web.bytes(
        metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
