"""The pipeline's Kafka topics, in one table: name, role, event model and partitions.

Everything that names a topic derives from :data:`TOPICS` - the topic specs created on a cluster,
the worker's agents, the lag probe, the JSON Schemas, the runner and the benchmark - so a misspelt
name fails at import instead of making an empty topic on a broker that auto-creates them.

Roles: ``input`` is where producers write; ``stage`` topics carry work between stages; every input
message ends in exactly one ``final`` topic (docs/reliability.md: tagged, a duplicate, or a dead letter); the
``output`` is what consumers downstream read; ``internal`` topics serve the workers themselves.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

from streams.contract.events import (
    Alert,
    CleanArticle,
    DeadLetter,
    DuplicateArticle,
    Event,
    MentionBatch,
    RawArticle,
    StoryUpdate,
    TaggedArticle,
)
from streams.settings import Settings

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a dead letter carries the whole original message

Role = Literal["input", "stage", "final", "output", "internal"]


@dataclass(frozen=True)
class Topic:
    name: str
    role: Role
    event: type[Event]
    #: the worker's agent that reads it (None: read outside the worker)
    agent: str | None = None
    #: None: ``STREAMS_PARTITIONS``. ``articles.clean`` has one: dedup must see every article in one
    #: order to decide which copy came first (docs/dedup.md).
    partitions: int | None = None
    #: keep the latest record per key only (Kafka log compaction)
    compacted: bool = False


RAW, CLEAN, UNIQUE, TAGGED = "articles.raw", "articles.clean", "articles.unique", "articles.tagged"
DUPLICATES, DEADLETTER = "articles.duplicates", "articles.deadletter"
ALERTS, ALERTS_DEADLETTER, MENTIONS = "alerts", "alerts.deadletter", "entity.mentions"
STORIES = "stories"

TOPICS: tuple[Topic, ...] = (
    Topic(RAW, "input", RawArticle, agent="clean"),
    Topic(CLEAN, "stage", CleanArticle, agent="dedup", partitions=1),
    Topic(UNIQUE, "stage", CleanArticle, agent="tag"),
    Topic(TAGGED, "final", TaggedArticle),  # the tag agent alerts on its articles as it sends them
    Topic(DUPLICATES, "final", DuplicateArticle),
    Topic(DEADLETTER, "final", DeadLetter),
    Topic(ALERTS, "output", Alert),
    Topic(STORIES, "output", StoryUpdate, partitions=1, compacted=True),  # latest state of each story
    Topic(ALERTS_DEADLETTER, "internal", DeadLetter),  # alerts a forwarder could not deliver
    Topic(MENTIONS, "internal", MentionBatch, agent="bursts"),  # canonical entity mentions, one entity per partition
)
BY_NAME = {t.name: t for t in TOPICS}


def named(role: Role) -> tuple[str, ...]:
    """The logical names of the topics with ``role``, in pipeline order."""
    return tuple(t.name for t in TOPICS if t.role == role)


FINAL = named("final")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic as it is created on a cluster (with ``STREAMS_TOPIC_PREFIX``)."""
    config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    return [TopicSpec(settings.topic(t.name), t.partitions or settings.partitions,
                      {**config, "cleanup.policy": "compact"} if t.compacted else config) for t in TOPICS]


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from streams.errors import BrokerError
    from streams.kafka import connection

    try:
        admin = connection.admin(settings, bootstrap, client_id="streams-admin")
    except KafkaError as exc:  # kafka-python reports a refused login as a bootstrap timeout
        who = f" as {settings.kafka_sasl_username!r}" if settings.kafka_security_protocol.startswith("SASL") else ""
        raise BrokerError(f"cannot connect to Kafka at {bootstrap} over {settings.kafka_security_protocol}{who} "
                          f"({exc}): check STREAMS_BROKER and the STREAMS_KAFKA_* settings; wrong SASL "
                          "credentials look like this too") from exc
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
               for s in topic_specs(settings) if s.name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return [t.name for t in new]
    finally:
        admin.close()

