"""Security basics on the real broker: SASL/PLAIN settings reach every Kafka client of the project
(admin, producer, the Faust worker, consumers), bad credentials fail clearly, and the password
never shows up in a log."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from streams.contract.topics import ensure_topics
from streams.errors import BrokerError
from streams.settings import DATA_DIR, Settings
from streams.tools.broker import LocalKafka
from tests.conftest import Pipeline

pytestmark = pytest.mark.kafka

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory):
    if os.environ.get("STREAMS_BROKER"):
        pytest.skip("configures a SASL listener, so it needs the local broker, not STREAMS_BROKER's")
    home = Path(os.environ.get("STREAMS_HOME", Path.home() / ".cache" / "streams"))
    kafka = LocalKafka(home=home, data_dir=tmp_path_factory.mktemp("kafka-sasl"), sasl_users={"streams": PASSWORD})
    kafka.start()
    yield kafka
    kafka.stop()


def sasl_settings(kafka: LocalKafka, password: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(broker=f"127.0.0.1:{kafka.sasl_port}", topic_prefix=f"s{run}.", app_id=f"streams-sasl-{run}",
                    kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                    kafka_sasl_username="streams", kafka_sasl_password=password)


def test_the_pipeline_runs_over_sasl_plain(sasl_kafka: LocalKafka, tmp_path: Path) -> None:
    settings = sasl_settings(sasl_kafka, PASSWORD)
    bootstrap = settings.broker or ""
    assert ensure_topics(settings, bootstrap)  # the admin client logged in
    pipeline = Pipeline(settings, bootstrap, tmp_path)
    try:
        worker = pipeline.start_worker()
        worker.wait_ready()
        lines = [line for line in (DATA_DIR / "sample_feed.jsonl").read_bytes().split(b"\n") if line]
        pipeline.publish(lines)
        reader = pipeline.collect(expected=len(lines))
        assert reader.accounted() == len(lines)
        assert reader.events["alerts"], "the worker's agents ran over the SASL listener"
    finally:
        pipeline.stop()
    log = worker.log.read_text()
    assert PASSWORD not in log


def test_a_wrong_password_fails_with_an_error_that_says_what_to_check(sasl_kafka: LocalKafka) -> None:
    settings = sasl_settings(sasl_kafka, "not-the-password")
    with pytest.raises(BrokerError) as info:
        ensure_topics(settings, settings.broker or "")
    message = str(info.value)
    assert "SASL_PLAINTEXT as 'streams'" in message and "credentials" in message
    assert "not-the-password" not in message


def test_the_password_stays_out_of_reprs_and_dumps() -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
                        kafka_sasl_password=PASSWORD)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
