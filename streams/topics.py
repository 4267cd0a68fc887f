"""The pipeline's Kafka topics: names, partition counts, and creating them on a cluster."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from streams.settings import Settings

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a dead letter carries the whole original message


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the pipeline uses. ``articles.clean`` has one partition: dedup must see every
    article in one order to decide which copy came first (see README, "Dedup at scale")."""
    config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    n = settings.partitions
    return [
        TopicSpec(settings.topic("articles.raw"), n, config),
        TopicSpec(settings.topic("articles.clean"), 1, config),
        TopicSpec(settings.topic("articles.unique"), n, config),
        TopicSpec(settings.topic("articles.duplicates"), n, config),
        TopicSpec(settings.topic("articles.tagged"), n, config),
        TopicSpec(settings.topic("alerts"), n, config),
        TopicSpec(settings.topic("articles.deadletter"), n, config),
        TopicSpec(settings.topic("alerts.deadletter"), 1, config),
        # internal: canonical entity mentions, each entity on one partition, so trend counts meet
        TopicSpec(settings.topic("entity.mentions"), n, {}),
    ]


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from streams.broker import BrokerError, client_options

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streams-admin", **client_options(settings))
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

