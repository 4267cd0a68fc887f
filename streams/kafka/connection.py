"""The connection to Kafka: where the clients connect and with which security settings.

Every Kafka client of the project - the worker (Faust), producers, consumers, admin clients - is
built with these, so ``STREAMS_BROKER`` and the ``STREAMS_KAFKA_*`` settings reach all of them.
Without ``STREAMS_BROKER`` the clients connect to the background local broker whose address
``streams kafka start`` wrote under ``STREAMS_HOME`` (:mod:`streams.tools.broker`).
"""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path

from streams.errors import BrokerError
from streams.settings import Settings

STATE_FILE = "local-kafka.json"

#: How a worker's Faust app moves records, written once so that ``streams bench-hop`` measures the
#: workers' own configuration: the producer lingers 5 ms to batch, a stream does not wait for its
#: buffer to empty before committing, and offsets are committed every half second.
WORKER_FLOW: dict[str, object] = {"producer_linger": 0.005, "stream_wait_empty": False, "broker_commit_interval": 0.5}


def state_path(settings: Settings) -> Path:
    return settings.home / STATE_FILE


def read_state(settings: Settings) -> dict | None:
    """The running background broker's pid and address, or None when none is running."""
    path = state_path(settings)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        os.kill(state["pid"], 0)
    except (ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None
    return state


def client_options(settings: Settings) -> dict[str, object]:
    """The connection security settings (``STREAMS_KAFKA_*``) as kafka-python client options: every
    producer, consumer and admin client of the project is built with them."""
    protocol = settings.kafka_security_protocol
    options: dict[str, object] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise BrokerError(f"{protocol} needs STREAMS_KAFKA_SASL_USERNAME and STREAMS_KAFKA_SASL_PASSWORD")
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": settings.kafka_sasl_password.get_secret_value()}
    if protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(settings)
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    return context


def faust_credentials(settings: Settings):
    """The same settings as Faust ``broker_credentials`` (None for PLAINTEXT)."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    client_options(settings)  # the same check for missing credentials
    assert settings.kafka_sasl_password is not None
    return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                 password=settings.kafka_sasl_password.get_secret_value(),
                                 mechanism=settings.kafka_sasl_mechanism,
                                 ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None)


def bootstrap_servers(settings: Settings) -> str:
    """Where the Kafka clients connect: ``STREAMS_BROKER``, else the background local broker."""
    if settings.broker:
        return settings.broker.removeprefix("kafka://")
    state = read_state(settings)
    if state is None:
        raise BrokerError("No broker: run `streams kafka start`, or set STREAMS_BROKER=host:port.")
    return state["bootstrap"]


def producer(settings: Settings, bootstrap: str | None = None, **options: object):
    """A kafka-python producer to ``bootstrap`` (default: :func:`bootstrap_servers`), secured by the
    settings; ``options`` are kafka-python's (acks, linger_ms, ...)."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap or bootstrap_servers(settings), **client_options(settings),
                         **options)


def consumer(settings: Settings, *topics: str, bootstrap: str | None = None, **options: object):
    """A kafka-python consumer of the full topic names ``topics``, secured by the settings."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, bootstrap_servers=bootstrap or bootstrap_servers(settings),
                         **client_options(settings), **options)


def admin(settings: Settings, bootstrap: str | None = None, **options: object):
    """A kafka-python admin client, secured by the settings."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap or bootstrap_servers(settings), **client_options(settings),
                            **options)
